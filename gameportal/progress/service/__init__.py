"""The rules of progress: `updates` (what game servers do), `reads` (the catalogue and a
player's own progress), `admin` (keys, achievements, level thresholds), `runtime` (what
each API process keeps), `errors`."""
