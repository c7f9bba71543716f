package controllers

import "github.com/stratops/stratops/internal/apicount"

// managerRequests counts the requests the suite's manager sends the API
// server, by namespace (see apicount), for the cost budgets.
var managerRequests = &apicount.Counter{}

var summary = apicount.Summary
