"""Speech made by our own tools for tests: espeak-ng (Debian's ``espeak-ng``, GPL-3; installed by
``scripts/tools/install_system_deps.sh test``). The synthesised audio is generated at test time, never stored."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

TEXT = ("Good evening, this is the six o'clock news. The city council met today to discuss the new budget "
        "for public transport. Officials said the plan would add twenty new bus routes by next spring, and "
        "commuters welcomed the announcement. And now the weather: tomorrow will be cloudy with a chance of "
        "rain in the afternoon, and temperatures around twelve degrees.")
VOICES = ("en-us", "en-gb+m3")


def espeak(path, text: str = TEXT, voice: str = "en-us", speed: int = 160) -> None:
    """Write ``text`` spoken by espeak-ng to the WAV file ``path`` (22.05 kHz); skips without espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (scripts/tools/install_system_deps.sh test installs it)")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)


def speech_audio(tmp_path, voice: str = "en-us") -> tuple[np.ndarray, int]:
    """espeak-ng's reading of ``TEXT`` as (float32 mono, samplerate)."""
    import soundfile as sf

    path = tmp_path / f"speech-{voice.replace('+', '_')}.wav"
    espeak(path, voice=voice)
    y, sr = sf.read(path, dtype="float32")
    return y, sr
