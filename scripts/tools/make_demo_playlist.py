#!/usr/bin/env python3
"""Build media/demo/: freely licensed music excerpts from Debian game packages.

Downloads each package with ``apt-get download`` (no root needed, nothing is
installed), unpacks it with ``dpkg-deb``, cuts an excerpt with ffmpeg
(0.5-s fades, Ogg Vorbis q3, 44.1 kHz stereo) and writes the playlist,
README table and licence files.

    python scripts/tools/make_demo_playlist.py      # rebuild media/demo
    python scripts/tools/make_demo_playlist.py --unpinned # take whatever version apt has

Edit TRACKS to change the selection; attribution text is copied verbatim into
media/demo/README.md, so keep it exactly as the package records it.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

# --- the selection -----------------------------------------------------------
# package/version: Debian package (bookworm); path: file inside the package;
# start/dur: excerpt in seconds of the original; style: what the genre monitor
# should roughly see.
TRACKS = [
    dict(slug="heroes-rite", title="Heroes Rite",
         author="The Battle for Wesnoth project music team (the package does not "
                "name the composer of each track; see LICENSES/wesnoth-music-credits.txt)",
         package="wesnoth-1.16-music", version="1:1.16.9-1",
         path="usr/share/games/wesnoth/1.16/data/core/music/heroes_rite.ogg",
         license="GPL-2+", start=90.0, dur=40.0,
         style="orchestral: sustained full-ensemble texture, no drum kit"),
    dict(slug="machine-wars", title="Machine Wars",
         author="Michael Kievernagel",
         package="asc-music", version="1.3-6",
         path="usr/share/games/asc/music/machine_wars.mp3",
         license="GPL-2+", start=125.0, dur=40.0,
         style="driving rock/industrial: hard kick-snare beat with dense broadband hits"),
    dict(slug="city-blues", title="City Blues",
         author="Robert van Herk",
         package="lincity-ng-data", version="2.9~git20150314-5",
         path="usr/share/games/lincity-ng/music/default/02 - Robert van Herk - City Blues.ogg",
         license="GPL-2+", start=92.0, dur=40.0,
         style="quiet, slow blues: clear harmonic notes, almost no percussion"),
    dict(slug="lincity", title="lincity",
         author="pronobozo",
         package="lincity-ng-data", version="2.9~git20150314-5",
         path="usr/share/games/lincity-ng/music/default/01 - pronobozo - lincity.ogg",
         license="GPL-2+", start=85.0, dur=40.0,
         style="electronic: loud, bright, busy programmed 16th-note beat"),
    dict(slug="spunky-race", title="spunkyrace",
         author="K. Schroeder <kschroeder@mirageworks.com>",
         package="extremetuxracer-data", version="0.8.2-1",
         path="usr/share/games/etr/music/spunkyrace-ks.ogg",
         license="GPL-2+", start=34.0, dur=40.0,
         style="up-tempo, loud game music: melodic lead line over a steady beat"),
]

# Files copied into LICENSES/ besides each package's copyright file: package ->
# [(path inside package, name in LICENSES/)].
EXTRA_DOCS = {
    "extremetuxracer-data": [("usr/share/games/etr/music/readme", "extremetuxracer-music-authors.txt")],
    "lincity-ng-data": [("usr/share/games/lincity-ng/gui/creditslist.xml", "lincity-ng-credits.xml")],
}
# The Wesnoth music package carries no credits; its data package lists the
# composers in about.cfg. Only that file is pulled out of the (large) .deb.
WESNOTH_CREDITS = ("wesnoth-1.16-data", "1:1.16.9-1",
                   "usr/share/games/wesnoth/1.16/data/core/about.cfg")
LICENSE_TEXTS = {"GPL-2+": Path("/usr/share/common-licenses/GPL-2")}

FADE_S = 0.5
QUALITY = "3"
MAX_TOTAL_BYTES = 4 * 1024 * 1024


class BuildError(Exception):
    """A step of the demo build failed; the message says which and why."""


def run(args, **kw):
    try:
        return subprocess.run(args, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise BuildError(f"'{args[0]}' is not installed") from None
    except subprocess.CalledProcessError as e:
        raise BuildError(f"{' '.join(map(str, args))} failed:\n{e.stderr.strip()}") from None


def download(package, version, debs, pinned=True):
    """apt-get download into debs/ (cached); returns the .deb path."""
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{package}_*.deb"))
    if pinned:
        ver_in_name = version.replace(":", "%3a")  # apt's file name for epochs
        have = [p for p in have if p.name.startswith(f"{package}_{ver_in_name}_")]
    if not have:
        spec = f"{package}={version}" if pinned else package
        run(["apt-get", "download", spec], cwd=debs)
        have = sorted(debs.glob(f"{package}_*.deb"))
    if not have:
        raise BuildError(f"apt-get download {package} produced no .deb")
    return have[-1]


def deb_version(deb):
    return run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()


def unpack(deb, root):
    """dpkg-deb -x into root/<package> once; returns that folder."""
    dest = root / deb.name.split("_")[0]
    stamp = dest / ".unpacked-from"
    if not (stamp.exists() and stamp.read_text() == deb.name):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(dest)])
        stamp.write_text(deb.name)
    return dest


def extract_member(deb, member, out):
    """Pull one file out of a .deb without unpacking all of it."""
    # stop reading at the member; dpkg-deb then complains of a broken pipe
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for ti in tar:
            if ti.name.lstrip("./") == member:
                out.write_bytes(tar.extractfile(ti).read())
                break
        else:
            raise BuildError(f"{member} not found in {deb.name}")
    proc.stdout.close()
    proc.wait()


def wesnoth_music_credits(about_cfg):
    """The [about] title=_"Music" block of Wesnoth's about.cfg, verbatim."""
    m = re.search(r'\[about\]\s*\n\s*title\s*=\s*_\s*"Music".*?\[/about\]', about_cfg, re.S)
    if not m:
        raise BuildError("no Music section in Wesnoth's about.cfg")
    return m.group(0)


def duration(path):
    out = run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
               "-of", "csv=p=0", str(path)]).stdout.strip()
    return float(out)


def cut(src, dst, t, version):
    """Excerpt [start, start+dur) with fades, as Ogg Vorbis 44.1 kHz stereo."""
    total = duration(src)
    if t["start"] + t["dur"] > total:
        raise BuildError(f"{src.name} is {total:.1f} s; cannot cut {t['start']}+{t['dur']} s")
    fades = (f"afade=t=in:st=0:d={FADE_S},"
             f"afade=t=out:st={t['dur'] - FADE_S}:d={FADE_S}")
    run(["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-ss", str(t["start"]), "-t", str(t["dur"]), "-i", str(src),
         "-map", "0:a:0", "-map_metadata", "-1", "-af", fades,
         "-ar", "44100", "-ac", "2", "-c:a", "libvorbis", "-q:a", QUALITY,
         "-metadata", f"title={t['title']}",
         "-metadata", f"artist={t['author']}",
         "-metadata", f"license={t['license']}",
         "-metadata", f"comment=Excerpt {t['start']:g}-{t['start'] + t['dur']:g} s of "
                      f"/{t['path']} from Debian package {t['package']} {version}",
         str(dst)])


def short_credit(author):
    """Author without e-mail or remarks, for the playlist's display line."""
    return re.sub(r"\s*(<[^>]*>|\(.*\))", "", author).strip()


def readme(rows, sizes):
    lines = [
        "# Demo playlist",
        "",
        "Short excerpts of freely licensed game music, used by the default file-playback",
        "source and by tests. Built by `scripts/tools/make_demo_playlist.py` from Debian",
        "(bookworm) packages; rerun it to rebuild or change the selection.",
        "",
        "Each file is a cut of the original track (start–end in seconds of the original,",
        f"{FADE_S:g}-s fade in/out), re-encoded as Ogg Vorbis q{QUALITY}, 44.1 kHz stereo.",
        "Nothing else was changed. The licence and copyright notices of each source",
        "package are in `LICENSES/`.",
        "",
        "Style notes come from looking at each excerpt's spectrogram and tempo, not from",
        "the authors; they are a rough guide to what the genre monitor should show.",
        "",
        "| file | title | author / composer | source package (version) | licence | cut (s) | style |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t, version in rows:
        lines.append(
            f"| `{name}` | {t['title']} | {t['author']} | `{t['package']}` ({version}), "
            f"`/{t['path']}` | {t['license']} | {t['start']:g}–{t['start'] + t['dur']:g} | {t['style']} |")
    lines += [
        "",
        f"Total size: {sum(sizes) / 1e6:.2f} MB. Order: `playlist.m3u`.",
        "",
        "## Licences",
        "",
        "All tracks are distributed under the GNU General Public License, version 2 or",
        "(at your option) any later version, as stated in each package's Debian",
        "copyright file (`LICENSES/<package>.copyright`); the full text is",
        "`LICENSES/GPL-2`. The preferred form for modification of these recordings is",
        "the original file in the named Debian package (source: `apt-get source <package>`).",
        "",
        "Attribution notes:",
        "",
        "- Wesnoth: the Debian copyright file names the authors of Wesnoth as a whole;",
        "  the composers are listed in `LICENSES/wesnoth-music-credits.txt` (the Music",
        "  section of `about.cfg` from `wesnoth-1.16-data`), without a per-track mapping.",
        "- LinCity-NG: composer names are taken from the file names in the package and",
        "  match the \"Sound and Music\" credits in `LICENSES/lincity-ng-credits.xml`.",
        "- Extreme Tux Racer: composer from the package's music readme,",
        "  `LICENSES/extremetuxracer-music-authors.txt`.",
        "- Advanced Strategic Command: composer from `LICENSES/asc-music.copyright`.",
        "",
    ]
    return "\n".join(lines)


def build(out, work, pinned):
    debs, root = work / "debs", work / "root"
    lic = out / "LICENSES"
    shutil.rmtree(out, ignore_errors=True)
    lic.mkdir(parents=True)

    rows, sizes, versions = [], [], {}
    for i, t in enumerate(TRACKS, 1):
        deb = download(t["package"], t["version"], debs, pinned)
        version = versions.setdefault(t["package"], deb_version(deb))
        pkg_root = unpack(deb, root)
        src = pkg_root / t["path"]
        if not src.exists():
            raise BuildError(f"{t['path']} is not in {deb.name}")
        name = f"{i:02d}-{t['slug']}.ogg"
        print(f"{name}: {t['package']} {version} {t['start']:g}+{t['dur']:g} s", flush=True)
        cut(src, out / name, t, version)
        sizes.append((out / name).stat().st_size)
        rows.append((name, t, version))

        copyright_file = pkg_root / "usr/share/doc" / t["package"] / "copyright"
        shutil.copyfile(copyright_file, lic / f"{t['package']}.copyright")
        for member, target in EXTRA_DOCS.get(t["package"], []):
            shutil.copyfile(pkg_root / member, lic / target)
        lic_text = LICENSE_TEXTS.get(t["license"])
        if lic_text is None:
            raise BuildError(f"no licence text known for {t['license']}")
        shutil.copyfile(lic_text, lic / lic_text.name)

    if any(t["package"].startswith("wesnoth") for t in TRACKS):
        pkg, ver, member = WESNOTH_CREDITS
        deb = download(pkg, ver, debs, pinned)
        about = work / "about.cfg"
        extract_member(deb, member, about)
        (lic / "wesnoth-music-credits.txt").write_text(
            f"Music credits of The Battle for Wesnoth, verbatim from /{member}\n"
            f"in Debian package {pkg} {deb_version(deb)}:\n\n"
            + wesnoth_music_credits(about.read_text()) + "\n")

    if sum(sizes) > MAX_TOTAL_BYTES:
        raise BuildError(f"demo playlist is {sum(sizes)} bytes, over {MAX_TOTAL_BYTES}")
    (out / "playlist.m3u").write_text(
        "#EXTM3U\n" + "".join(f"#EXTINF:{t['dur']:g},{short_credit(t['author'])} - {t['title']}\n{n}\n"
                              for n, t, _ in rows))
    (out / "README.md").write_text(readme(rows, sizes))
    print(f"total {sum(sizes) / 1e6:.2f} MB in {out}")


def main(argv=None):
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=repo / "media" / "demo")
    ap.add_argument("--work", type=Path, default=Path("/tmp/genre-monitor-demo"),
                    help="download/unpack cache (several hundred MB)")
    ap.add_argument("--unpinned", action="store_true",
                    help="use the version apt offers instead of the pinned one")
    args = ap.parse_args(argv)
    try:
        build(args.out, args.work, pinned=not args.unpinned)
    except BuildError as e:
        sys.exit(f"make_demo_playlist: {e}")


if __name__ == "__main__":
    main()
