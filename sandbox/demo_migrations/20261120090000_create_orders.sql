create type order_status as enum ('new', 'paid', 'shipped');
create table orders (
    id bigint generated always as identity primary key,
    customer_id bigint not null references customers (id),
    status order_status not null default 'new',
    total_cents integer not null
);
create index orders_customer on orders (customer_id);
