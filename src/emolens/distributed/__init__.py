"""Running emolens on distributed engines (:mod:`emolens.distributed.ray_batch`: Ray Data).

Nothing here is imported by the rest of emolens; ``ray`` is imported only inside
:mod:`emolens.distributed.ray_batch` and only installed with ``pip install emolens[ray]``.
"""
