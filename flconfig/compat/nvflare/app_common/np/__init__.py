"""FLARE's ``nvflare.app_common.np`` (the constants job code imports; the components are flconfig's)."""
