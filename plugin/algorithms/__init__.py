"""Processing algorithms of the FactoFormer provider."""
