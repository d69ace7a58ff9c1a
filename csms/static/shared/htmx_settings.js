/* htmx settings of the admin and the driver portal. Loaded after htmx, before the page's own script.
   - Error answers are swapped in too, since they carry a readable fragment (403 for a viewer, 422
     for a bad form, 409 or 429 for a refused start); a 204 swaps nothing.
   - Swapped-in content is made live (its hx- attributes processed) in the swap itself, not after
     htmx's default 20 ms settle delay: a click that lands in that window, on a panel that has just
     loaded itself again, sent its form without htmx (a whole page, the panel's answer lost).
     Nothing here animates the settling. */
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "[45]..", swap: true, error: true },
  ];
  htmx.config.defaultSettleDelay = 0;
})();
