/** STATUS_PAGE is the admin server's HTML status page (see status-page.html.ts). */
export const STATUS_PAGE = '<!doctype html><title>proxy</title><p>status page</p>';
