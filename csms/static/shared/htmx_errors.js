/* htmx settings of the admin and the driver portal: error answers are swapped in too, since they
   carry a readable fragment (403 for a viewer, 422 for a bad form, 409 or 429 for a refused
   start); a 204 swaps nothing. Loaded after htmx, before the page's own script. */
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "[45]..", swap: true, error: true },
  ];
})();
