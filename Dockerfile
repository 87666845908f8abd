# The webcare image: the service, the action server and the Rasa server (with a trained model)
# all run from it, with different commands (see docker-compose.yml). Python 3.10: Rasa 3.6
# refuses 3.11. Build: docker build -t webcare .
FROM python:3.10-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first (cached while only the code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY bot/__init__.py bot/__init__.py
RUN pip install "pip<25" && pip install -c constraints.txt -e . && pip check

COPY . .
RUN pip install -c constraints.txt --no-deps -e . \
 && webcare train   # the model is part of the image: nothing is downloaded at run time

# var: the service's files; models: promotions move candidates in (a volume shared with Rasa)
RUN useradd --system --home /app webcare && mkdir -p var models && chown -R webcare var models
USER webcare
EXPOSE 8080 5005 5055
CMD ["webcare", "--config", "deploy/webcare.scale.yml", "service"]
