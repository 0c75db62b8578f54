"""``genesis.backends.cudnn``: PyTorch's cuDNN flags, kept for scripts that set them.

genesis calls no cuDNN routine (it has no convolutions or RNN kernels), so these flags change
nothing; they exist so that PyTorch code setting them runs unchanged.
"""
allow_tf32 = True
benchmark = False
deterministic = False
enabled = True
