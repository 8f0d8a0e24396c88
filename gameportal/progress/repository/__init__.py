"""All progress SQL: `updates` (what game servers do: the hot path and the careful one),
`reads` (players', game servers' and the public catalogue's reads), `admin` (keys,
achievements, level thresholds)."""
