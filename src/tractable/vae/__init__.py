r"""vae"""
