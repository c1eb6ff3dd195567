"""A music library's genre and tempo: scan folders, analyse each track (a few windows read by
seeking, or the whole track), keep the results in the data directory, and turn them into
reports, playlists and tags. The command line (``run.py library``) and the web API share it."""
