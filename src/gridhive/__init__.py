"""gridhive: a virtual power plant and demand-response platform speaking the Flip Energy APIs."""

__version__ = "0.1.0"
