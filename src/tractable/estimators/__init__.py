r"""estimators"""
