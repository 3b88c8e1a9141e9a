"""Entropy coding: CABAC engine (`engine`), MV prediction (`mvpred`) and the frame syntax (`syntax`)."""
