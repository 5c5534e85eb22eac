"""The parameter groups Table 1 and Table 2 name, defined once.

Table 1 separates training "all" parameters from the "BN params"; Table 2's "+ log + conv1" rows also
train the logit layer and the first convolution (Section 3.2: "we might also learn the logit or first
convolutional layer"). The configurations (repro/paper/configs.py) list the groups they train by these
names; the model (repro/mechanics/model.py) says which tensor belongs to which group.
"""

BN = "bn"  # every BatchNorm gamma and beta, shortcut BNs included
LOGITS = "logits"  # the final linear layer ("log" in Table 2's "+ log + conv1")
CONV1 = "conv1"  # the first convolution ("conv1" in Table 2)
REST = "rest"  # everything else: the convolutions of the residual blocks and shortcuts
PARAMETER_GROUPS = (BN, LOGITS, CONV1, REST)
