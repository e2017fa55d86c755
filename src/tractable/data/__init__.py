r"""data"""
