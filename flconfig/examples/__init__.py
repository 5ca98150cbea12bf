"""The example job's pieces: data sets split between sites, small CNNs, and a Learner.

``flconfig.examples.digits.DigitsLearner`` trains ``flconfig.examples.models.DigitsCNN``
on scikit-learn's handwritten digits (shipped with scikit-learn, no download), or
``CifarCNN`` on CIFAR-10 read from its standard binary files.
"""
