"""Numerics engine: the full matrix UFM objectives, seeded solvers and neural-collapse metrics.

torch and numpy only (never SymPy). Submodules:

* ``numerics.problem``  -- ``Instance`` (dependency-free description of a problem) and its validation;
* ``numerics.models``   -- labels Y, parameters, the objectives (deep linear / extended UFM, MSE / CE);
* ``numerics.solvers``  -- ``gd`` (momentum), ``lbfgs`` (strong Wolfe) and multi-start;
* ``numerics.starts``   -- ``INIT_KINDS``, ``balanced_start`` and ``multistart`` (seeded starts cycling through kinds);
* ``numerics.diagnostics`` -- ``hessian_info``, ``objective_scale``, ``evaluate_point``, ``parameter_count`` at a point;
* ``numerics.metrics``  -- NC1 / NC2 / NC3, spectra, balancedness residuals, ``measure``;
* ``numerics.ground_truth`` -- M = 1 MSE global minimum by singular-value soft-thresholding (numpy).
"""
from numerics.problem import Instance, InstanceError

__all__ = ["Instance", "InstanceError"]
