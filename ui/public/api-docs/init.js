// Starts Swagger UI on the API docs page (/docs). A file rather than an inline script, so the
// page's Content-Security-Policy allows scripts from its own origin only. validatorUrl: null
// keeps Swagger UI from loading its validity badge from swagger.io.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    showExtensions: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
