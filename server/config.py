"""Constants shared by every stage: the model's input contract and live defaults."""

# musicnn's input contract (Pons & Serra 2019): 16 kHz mono, 96-band log-mel,
# n_fft 512, hop 256, 187 frames per 3-s patch.
MODEL_SR = 16000
N_MELS = 96
N_FFT = 512
HOP_LENGTH = 256
WINDOW_FRAMES = 187
WINDOW_SECONDS = 3.0
# Exactly 187 un-padded STFT frames, as in the interior of the original's
# whole-track spectrogram: (187 - 1) * 256 + 512 = 48128 samples (3.008 s).
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * HOP_LENGTH + N_FFT

# Live monitoring defaults.
DEFAULT_HOP_SECONDS = 1.0
MIN_HOP_SECONDS = 0.25
MAX_HOP_SECONDS = 3.0
# A source silent (no window) for longer than this starts afresh: smoothing, the open
# segment and alert timers do not bridge the gap.
MAX_GAP_SECONDS = 30.0
RING_SECONDS = 12.0  # ring capacity: room for one window plus a few late hops
# A stream's first window is classified once this much audio has arrived, not after a full
# window: the rest is silence, which the model fills with the sound so far (``fill_silence``),
# so predictions start after a second and clips shorter than a window are classified too.
FIRST_WINDOW_SECONDS = 1.0
MAX_LABEL_CHARS = 200  # a source's display name: labels, upload names, names derived from paths or URLs
# Sources one server runs at once: the API refuses the next one and settings.json keeps this many.
MAX_SOURCES = 200

GTZAN_GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)
