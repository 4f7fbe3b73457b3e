"""peftbench: which PEFT method should I use here, and what will it cost me?"""

__version__ = "0.1.0"
