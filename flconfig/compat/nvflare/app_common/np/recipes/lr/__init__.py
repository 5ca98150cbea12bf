"""FLARE's ``nvflare.app_common.np.recipes.lr``: federated logistic regression."""
