r"""continuous"""
