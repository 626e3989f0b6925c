"""Development data: the synthetic generator of the source feeds, the benchmarks, and the demo that
`make run` runs. Not needed by a production install."""
