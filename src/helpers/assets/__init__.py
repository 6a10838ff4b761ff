"""Data sets and pretrained models, offline first, every file checked by SHA-256.

``data`` loads MNIST and the sentiment sentences; ``models`` locates and loads the packaged
pretrained models. Each loader tries the copy a registry package ships before the network,
and prints which source it used.
"""
