"""Sound identity: which known sound a clip's audio reuses, kept at a cost set by the query, not the corpus.

  vote.py      offset voting of a query's hashes against postings (pure numpy)
  segment.py   hash-addressed, memory-mapped postings whose lookup cost does not grow with the corpus
               (measured by benchmarks/sound_layouts.py)
  postings.py  a node's view of all postings: segments plus an in-memory tail, following the catalog's
               chunks, compacted in the background
  identity.py  matching outside the service's write lock, and the check under it that gives two
               concurrent uploads of one new sound a single sound id
Postings are stored in the catalog as chunks (``storage/catalog.py``, table ``sound_chunks``).
"""
