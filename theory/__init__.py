"""Theory engine: SymPy / mpmath derivations of the UFM objectives' global minimizers.

Never imports torch (a test checks it). Reads instances by duck typing: any object with the
attributes of ``numerics.problem.Instance`` (counts, width, depth, lam_w, lam_h, loss, bias, lam_b,
activation) will do.
"""
