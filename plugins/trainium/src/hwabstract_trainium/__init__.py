"""hwabstract-trainium: the ``trainium`` backend of hwabstract, on AWS Trainium through PJRT."""
