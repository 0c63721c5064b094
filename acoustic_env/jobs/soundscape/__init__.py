"""Soundscapes over time (``acoustic-env soundscape``): a deployment's recordings placed on each site's clock,
indices, per-bin spectral indices and class shares per segment, events, detection histories and a page.

:mod:`.job` runs it; :mod:`.segments` scores one file's segments; :mod:`.events` merges windows into events;
:mod:`.histories` writes the occupancy matrices. Placing the files in time is ``audio/timeline.py``'s, the per-bin
indices ``features/spectral_bins.py``'s, the page ``pages/soundscape.py``'s.
"""
