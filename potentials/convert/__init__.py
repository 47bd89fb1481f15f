"""Converters from other potentials' checkpoints into jmof models (torch needed only while
converting; the results load with ``potentials.load``).

- :mod:`potentials.convert.sevennet`: SevenNet-0 and other SevenNet NequIP models.
"""
