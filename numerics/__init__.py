"""Numerics engine: the full matrix UFM objectives, seeded solvers and neural-collapse metrics.

torch and numpy only (never SymPy). Submodules:

* ``numerics.problem``  -- ``Instance`` (dependency-free description of a problem) and its validation;
* ``numerics.models``   -- labels Y, parameters, the objectives (deep linear / extended UFM, MSE / CE);
* ``numerics.solvers``  -- one-at-a-time ``gd`` (momentum), ``lbfgs`` (strong Wolfe): the reference solvers;
* ``numerics.batched``  -- the batched solvers (many instances x starts per call, CPU or CUDA): L-BFGS with
  per-problem line searches and a Newton-CG polish, momentum GD; exact padding of different shapes;
* ``numerics.starts``   -- the start portfolio (``PORTFOLIO``: Gaussian at several scales, balanced spectral,
  low-rank; the lifted reduced start on deep CE), ``solve_instances`` (batched) and ``multistart`` (batched, or ``engine="loop"``);
* ``numerics.diagnostics`` -- ``hessian_info``, ``objective_scale``, ``evaluate_point``, ``parameter_count`` at a point;
* ``numerics.curvature`` -- Hessian-free curvature: ``transverse_curvature`` (Lanczos on Hessian-vector products with
  the symmetry orbit projected out), ``hessian_norm``, and the dense reference ``dense_transverse``;
* ``numerics.metrics``  -- NC1 / NC2 / NC3, spectra, balancedness residuals, ``measure``;
* ``numerics.ground_truth`` -- M = 1 MSE global minimum by singular-value soft-thresholding (numpy);
* ``numerics.ce_lift``  -- deep CE: the reduced K x K problem as an instance, the balanced lift of class-mean logits;
* ``numerics.ce_reduced`` -- the reduced deep CE search: every distinct local minimum with its geometry.
"""
from ncverify.numerics.problem import Instance, InstanceError

__all__ = ["Instance", "InstanceError"]
