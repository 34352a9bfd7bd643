# heal's image: the CLI, its npm dependencies and the shipped weights; the entrypoint is `heal`.
#
#   docker build -t heal:0.1.0 .
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/runs:/runs" heal:0.1.0 eval --data /data/w40 --jobs 4 --out /runs/eval
#
# .npmrc (copied first) sets ignore-scripts=true, so no dependency's install script runs. None is
# needed for the CPU: onnxruntime-node's npm package carries its Linux x64 binaries
# (bin/napi-v6/linux/x64: onnxruntime_binding.node, libonnxruntime.so.1); its install script only
# downloads the optional CUDA provider, which this image does not have (see README, GPU inference).
# esbuild (under tsx) gets its binary from its platform package @esbuild/linux-x64, an ordinary
# optional dependency in package-lock.json. The TypeScript sources run through tsx: no build step.
FROM node:20-bookworm-slim
WORKDIR /opt/heal
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
# Sources and models/shipped/ (weights.bin, the ONNX files, manifest.json); .dockerignore keeps
# data, runs, caches and node_modules out.
COPY . .
# The image fails to build, rather than to run, when onnxruntime's binary or the CLI does not load.
RUN ln -s /opt/heal/cli/heal.js /usr/local/bin/heal \
  && node -e "require('onnxruntime-node').listSupportedBackends().some((b) => b.name === 'cpu') || process.exit(1)" \
  && heal eval --help > /dev/null
ENTRYPOINT ["heal"]
CMD ["--help"]
