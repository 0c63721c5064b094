"""The label vocabulary, at the bottom of the house: AudioSet's class list and ontology (package data) and
the tasks that map a manifest's labels to classes. Embedders name their scores from it, and every job, recipe
and the AudioSet commands read labels through it; it imports nothing of the project."""
