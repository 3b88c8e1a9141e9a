"""Integer NN runtime (SADL-equivalent, paper 001 section IV): graph IR, converter,
numpy int64 reference, jitted exact execution, file format, sparse dense layers.

Importing the package imports no JAX; ``execute`` and ``convert`` do.
"""
