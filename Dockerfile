# In-cluster image of the notebook controller.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml ./
COPY notebook_controller ./notebook_controller
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 65532:65532
ENTRYPOINT ["notebook-controller"]
CMD ["run"]
