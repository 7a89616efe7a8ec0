"""Data sets: sources, declarative cleaning, the Pandera contract and the split."""
