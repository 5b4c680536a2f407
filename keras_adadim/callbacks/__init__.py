from keras_adadim.callbacks.alpha_updater import AlphaUpdater

__all__ = ["AlphaUpdater"]
