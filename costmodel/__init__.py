"""glugqa's analytic cost model. Never imports JAX or the reference's NumPy ops."""
