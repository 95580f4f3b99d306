"""The cold-start loop: what a new video's content predicts (prior.py), how its first audience updates
that (posterior.py), and whether to widen its audience, hold or stop (rollout.py). Plain functions over
numbers; the service (app/service.py) feeds them from the indexes, the score book and the catalog."""
