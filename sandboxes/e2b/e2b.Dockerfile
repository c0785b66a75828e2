# E2B template for agentrl's e2b sandbox backend (agentrl/sandbox/e2b.py): E2B's code interpreter
# plus the packages cells may import. Build and register it with the E2B CLI (2.x; `e2b template build`
# and its e2b.toml are deprecated there):
#   e2b template create agentrl-sandbox --path sandboxes/e2b --dockerfile e2b.Dockerfile \
#     --cmd "/root/.jupyter/start-up.sh" --cpu-count 2 --memory-mb 2048
# then open_sandbox(backend="e2b", template="agentrl-sandbox").
FROM e2bdev/code-interpreter:latest

RUN pip install --no-cache-dir numpy sympy
