// configurable-http-proxy as the project runs it: the proxy's own module and
// command line, except that an address whose percent-encoding is not UTF-8
// (say /%c0%af) gets a 400. The proxy itself decodes every path to find its
// route (decodeURIComponent in targetForReq) and answers such an address
// with a 500 before any service sees it.
//
//   node chp-wrapper.mjs [--chp-package=<dir>] [configurable-http-proxy's options]

import { realpathSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";

// The package: as node finds it from here (the project's node_modules), or
// the folder given first as --chp-package=<dir> (a global installation).
const PACKAGE_OPTION = "--chp-package=";
let packageDir;
if (process.argv[2]?.startsWith(PACKAGE_OPTION)) {
  packageDir = process.argv[2].slice(PACKAGE_OPTION.length);
  process.argv.splice(2, 1); // the proxy's command line never sees it
} else {
  const require = createRequire(import.meta.url);
  packageDir = path.dirname(realpathSync(require.resolve("configurable-http-proxy/package.json")));
}
const module = (relative) => pathToFileURL(path.join(packageDir, relative)).href;

const { default: ConfigurableProxy } = await import(module("lib/configproxy.js"));

function decodable(url) {
  try {
    decodeURIComponent(new URL(url, "http://example.com").pathname);
    return true;
  } catch (error) {
    if (error instanceof URIError) return false;
    throw error;
  }
}

const MESSAGE = "400: bad percent-encoding in the address (not UTF-8)\n";
const proxy = ConfigurableProxy.prototype;
const handleWeb = proxy.handleProxyWeb;
const handleWs = proxy.handleProxyWs;

proxy.handleProxyWeb = function (req, res) {
  if (!decodable(req.url)) {
    this.log.info("400 %s bad percent-encoding", req.method);
    res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(MESSAGE) });
    res.end(MESSAGE);
    return;
  }
  return handleWeb.call(this, req, res);
};

proxy.handleProxyWs = function (req, socket, head) {
  if (!decodable(req.url)) {
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(MESSAGE)}\r\n\r\n${MESSAGE}`);
    return;
  }
  return handleWs.call(this, req, socket, head);
};

// the command line, exactly as configurable-http-proxy's own
await import(module("bin/configurable-http-proxy"));
