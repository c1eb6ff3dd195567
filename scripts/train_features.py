"""Fill the embedding cache for a collection under the conditions the model card needs.

    python scripts/train_features.py DATA_DIR [--hop 3] [--raw]

Conditions run one after another, most useful first, so a partial run is still useful.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from server.training.dataset import list_tracks  # noqa: E402
from server.training.embeddings import collection_outputs  # noqa: E402

NORM_ORDER = ("clean", "rand0", "gain-12", "gain+6", "room", "sr44100", "sr48000", "gain-6", "rand1")
RAW_ORDER = ("clean", "gain-6", "gain+6", "gain-12")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data_dir")
    ap.add_argument("--hop", type=float, default=3.0)
    ap.add_argument("--conditions", nargs="*")
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    tracks = list_tracks(args.data_dir)
    plan = ([(c, True) for c in args.conditions] if args.conditions
            else [(c, True) for c in NORM_ORDER] + [(c, False) for c in RAW_ORDER])
    for condition, norm in plan:
        collection_outputs(tracks, (condition,), hop_s=args.hop, level_norm=norm, cache_dir=args.cache_dir,
                           desc=f"{condition} {'norm' if norm else 'raw'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
