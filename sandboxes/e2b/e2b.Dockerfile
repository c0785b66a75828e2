# E2B template for agentrl's e2b sandbox backend (agentrl/sandbox/e2b.py): E2B's code interpreter
# plus the packages cells may import. Build and register it with the E2B CLI:
#   cd sandboxes/e2b && e2b template build --name agentrl-sandbox -c "/root/.jupyter/start-up.sh"
# then open_sandbox(backend="e2b", template="agentrl-sandbox").
FROM e2bdev/code-interpreter:latest

RUN pip install --no-cache-dir numpy sympy
