"""Event files -> numpy columns per (run, tag).

`records` frames the files' bytes and checks their CRCs, `events` decodes scalar values from the
records, `reader` keeps every run of a logdir read at full resolution (in the background), and
`provider` is the sampled fallback through TensorBoard's data provider. Both sources answer the
`source.Source` protocol, which is all the server sees of them.
"""
