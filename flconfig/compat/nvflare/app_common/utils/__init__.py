"""FLARE's ``nvflare.app_common.utils`` that job code uses."""
