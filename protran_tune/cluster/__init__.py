"""Measuring on a Ray cluster: one platform actor per device and a pool that spreads batches over them.

* :mod:`~protran_tune.cluster.actors`: :data:`PlatformActor`, a Ray actor that owns one device's
  :class:`~protran_tune.platforms.base.Platform`, scheduled by the resource ``platform:<name>``;
* :mod:`~protran_tune.cluster.pool`: :class:`PlatformPool`, every device of a platform measuring a batch;
* :mod:`~protran_tune.cluster.raycompat`: makes ``import ray`` work where an installed ``amdsmi`` is broken
  and keeps a single-host Ray on loopback (needs no Ray itself).

The measuring core, :mod:`protran_tune.platforms`, needs none of this: it runs on boards without Ray.
Importing this package imports no Ray; its modules ``actors`` and ``pool`` do.
"""
