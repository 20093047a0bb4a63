// Renders /openapi.json with the vendored Redoc. Kept out of the page so the page's
// Content-Security-Policy can refuse inline scripts.
(function () {
  var root = document.getElementById("reference");
  var system = 'system-ui, -apple-system, "Segoe UI", sans-serif';
  Redoc.init(
    root.dataset.specUrl,
    {
      expandResponses: "200,201,202",
      jsonSampleExpandLevel: 3,
      sortTagsAlphabetically: false,
      hideLoading: false,
      theme: {
        colors: { primary: { main: "#2f6fde" } },
        typography: {
          fontFamily: system,
          headings: { fontFamily: system, fontWeight: "600" },
          code: { fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace' },
        },
        sidebar: { backgroundColor: "#f6f7f9" },
      },
    },
    root
  );
})();
