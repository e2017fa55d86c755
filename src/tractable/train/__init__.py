r"""train"""
