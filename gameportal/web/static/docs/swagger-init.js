// Starts Swagger UI on /docs. A file rather than an inline script, so the page's CSP can
// allow scripts from this origin only. The OpenAPI document's URL comes from the page.
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    // No deep links: Swagger UI draws each one as a link inside the operation's button, a
    // focusable element inside another (axe-core's nested-interactive, serious).
    deepLinking: false,
    showExtensions: true,
    showCommonExtensions: true,
    // The online validator's badge would load from another site.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
