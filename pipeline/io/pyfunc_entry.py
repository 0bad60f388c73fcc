"""The file MLflow runs to rebuild the pyfunc model when loading it (MLflow "models from code").

Logging the model by this file's path instead of a pickled object means loading never unpickles
arbitrary code from the artifact store; only the scoring bundle is read, with joblib.
"""

import mlflow.models

from leadscore.pipeline.io.model_package import LeadScoringPyfunc

mlflow.models.set_model(LeadScoringPyfunc())
