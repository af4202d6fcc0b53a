"""Data selection: Gaussian Data Selection (GDS) of log-mel patches."""

from emolens.selection.gds import (
    DEFAULT_THRESHOLD,
    GDSConfig,
    GDSResult,
    GaussianDataSelector,
    SelectionError,
    THESIS_THRESHOLD,
    bhattacharyya_coefficient,
    gaussian_pdf_grid,
    patch_gaussians,
    pdf_correlation,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "GDSConfig",
    "GDSResult",
    "GaussianDataSelector",
    "SelectionError",
    "THESIS_THRESHOLD",
    "bhattacharyya_coefficient",
    "gaussian_pdf_grid",
    "patch_gaussians",
    "pdf_correlation",
]
