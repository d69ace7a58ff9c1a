/* The driver portal's small script: htmx swaps error answers too (a refused start, 429, 409 ...
   carry a readable fragment), as in the admin. */
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "[45]..", swap: true, error: true },
  ];
})();
