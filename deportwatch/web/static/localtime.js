// Shows every <time datetime="..."> in the reader's own time zone. The UTC
// time stays in the title (tooltip). No other script runs on these pages.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const element of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      element.textContent = format.format(moment);
      element.classList.add("local");
    }
  }
});
